# The lab's three hosts (demos/lab: node1..node3 at 192.168.77.11-13 on the lab bridge,
# each a member and an agent, pools lab1..lab3) deployed by the module over SSH. Applying
# needs the lab's SSH mode (each node running sshd in its own network and mount
# namespaces), which is not built yet: see README.md.

terraform {
  required_version = ">= 1.5"
}

variable "package" {
  description = "The package built by deploy/deb/build."
  type        = string
}

variable "ssh_private_key" {
  description = "The key the lab's sshd accepts for root."
  type        = string
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
      ssh_host           = "192.168.77.1${k}"
      underlay_address   = "192.168.77.1${k}"
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
