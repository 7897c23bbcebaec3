variable "hosts" {
  description = <<-EOT
    The cluster's hosts, by name (the agent's node name and the name in its certificates).
    Each: ssh_host (address terraform's SSH dials), ssh_user (default root),
    underlay_address (the address the other hosts reach it at), underlay_interface (the
    interface that carries the WEAVE_CIDR overlay; null turns the network side off),
    control_member (runs a member of the control service; an odd number of hosts must),
    storage (zfs:POOL[/PATH] or dir:PATH).
  EOT
  type = map(object({
    ssh_host           = string
    ssh_user           = optional(string, "root")
    underlay_address   = string
    underlay_interface = optional(string)
    control_member     = optional(bool, false)
    storage            = optional(string, "dir:/var/lib/flocker")
  }))

  validation {
    condition     = length([for h in values(var.hosts) : h if h.control_member]) % 2 == 1
    error_message = "hosts: an odd number of hosts (1, 3 or 5) must set control_member = true: the control service needs a majority of its members, so an even count adds a host that can fail without adding a failure it survives, and zero leaves the cluster without a control service."
  }
  validation {
    condition     = alltrue([for name in keys(var.hosts) : can(regex("^[A-Za-z0-9_.-]{1,63}$", name))])
    error_message = "hosts: each name must be 1 to 63 characters from A-Z, a-z, 0-9, '_', '.', '-' (it is the node name in the host's certificate)."
  }
  validation {
    condition     = alltrue([for h in values(var.hosts) : can(regex("^(zfs|dir):.+$", h.storage))])
    error_message = "hosts: storage must be zfs:POOL[/PATH] or dir:PATH."
  }
}

variable "package" {
  description = "Path of the Debian package built by deploy/deb/build (flocker_<version>_<arch>.deb). A change of its contents re-installs it on every host."
  type        = string
}

variable "ssh_private_key" {
  description = "Path of the SSH private key that logs in to every host as its ssh_user (root, or a user that may run dpkg and systemctl without a password through sudo)."
  type        = string
}

variable "ip_pool" {
  description = "The IP pool WEAVE_CIDR=net:<pool> allocates from, added once with flockerctl (e.g. 10.255.0.0/16)."
  type        = string

  validation {
    condition     = can(cidrhost(var.ip_pool, 0))
    error_message = "ip_pool must be a CIDR block such as 10.255.0.0/16."
  }
}

variable "ca_dir" {
  description = "Local directory for the cluster CA (ca.crt, ca.key; an existing CA is kept) and the certificates issued from it: hosts/<name>/{control,node} and user/ (the operator's, for flockerctl)."
  type        = string
}

variable "flockerctl" {
  description = "The local flockerctl that makes the CA and the certificates and adds the IP pool."
  type        = string
  default     = "flockerctl"
}

variable "user_name" {
  description = "The name in the operator's user certificate (ca_dir/user)."
  type        = string
  default     = "terraform"
}

variable "control_port" {
  description = "The control members' port."
  type        = number
  default     = 4523
}

variable "agent_port" {
  description = "The agents' Agent API port."
  type        = number
  default     = 4524
}

variable "use_sudo" {
  description = "Run the remote commands with sudo (for an ssh_user other than root)."
  type        = bool
  default     = false
}
