# The lab's three SSH hosts (`demos/lab up --ssh`: node1..node3 at 192.168.77.11-13 on the
# lab bridge, each booting its own systemd, with sshd, dockerd and its zfs-fuse pool
# lab1..lab3) deployed by the module over SSH: each a member and an agent. See README.md.

terraform {
  required_version = ">= 1.5"
}

variable "package" {
  description = "The package built by deploy/deb/build."
  type        = string
}

variable "ssh_private_key" {
  description = "The key the lab's hosts accept for root ($LAB_DIR/ssh/id_ed25519)."
  type        = string
  default     = "/var/lib/lab/ssh/id_ed25519"
}

variable "network" {
  description = "The lab's /24 without its last part (LAB_NET): host K is at NETWORK.1K."
  type        = string
  default     = "192.168.77"
}

variable "ca_dir" {
  description = "Where the cluster CA and certificates are made."
  type        = string
  default     = "ca"
}

variable "flockerctl" {
  description = "The local flockerctl."
  type        = string
  default     = "flockerctl"
}

module "flocker" {
  source = "../.."

  package         = var.package
  ssh_private_key = var.ssh_private_key
  ca_dir          = var.ca_dir
  flockerctl      = var.flockerctl
  ip_pool         = "10.255.0.0/16"

  hosts = {
    for k in [1, 2, 3] : "node${k}" => {
      ssh_host           = "${var.network}.1${k}"
      underlay_address   = "${var.network}.1${k}"
      underlay_interface = "eth0"
      control_member     = true
      storage            = "zfs:lab${k}"
    }
  }
}

output "control_endpoints" {
  description = "The control members."
  value       = module.flocker.control_endpoints
}

output "docker_hosts" {
  description = "Each node's DOCKER_HOST through its agent."
  value       = module.flocker.docker_hosts
}

output "flockerctl" {
  description = "flockerctl with the operator's certificate."
  value       = module.flocker.flockerctl
}
