output "control_endpoints" {
  description = "The control members, HOST:PORT on their underlay addresses (the agents' `control`; flockerctl --control, with the user certificate in ca_dir/user)."
  value       = local.control_endpoints
}

output "control_members" {
  description = "Each member's id by host name."
  value       = local.member_ids
}

output "docker_hosts" {
  description = "Each host's DOCKER_HOST through its agent (on that host; /etc/profile.d sets it in login shells), with the SSH address to reach it."
  value = {
    for name, h in var.hosts : name => {
      ssh         = "${h.ssh_user}@${h.ssh_host}"
      docker_host = "unix:///run/flocker/docker.sock"
    }
  }
}

output "flockerctl" {
  description = "A flockerctl command line for the operator's machine."
  value       = "FLOCKER_TLS_DIR=${var.ca_dir}/user FLOCKER_CONTROL=${join(",", local.operator_endpoints)} ${var.flockerctl}"
}
