# The Flocker cluster on hosts reached over SSH (README.md, docs/deploy.md "Terraform"):
# only terraform_data and the file, remote-exec and local-exec provisioners.
#
# Order: the CA and every certificate (local) -> the package on every host -> all control
# members together -> the agents -> the IP pool, and the rollout, which visits the hosts one
# at a time (members first) and, when the package is new, upgrades it there. Destroy runs it
# backwards: the agents stop, the members stop, the package is removed.
#
# Every step on a host is deploy/install-host, copied there and run as root.

locals {
  # Members get ids 1..N in the order of their names (stable while the map keeps them).
  member_names = sort([for name, h in var.hosts : name if h.control_member])
  member_ids   = { for i, name in local.member_names : name => i + 1 }

  # What the agents and clients dial: each member's underlay address.
  control_endpoints = [
    for name in local.member_names : "${var.hosts[name].underlay_address}:${var.control_port}"
  ]
  # What flockerctl on the operator's machine dials: each member's SSH address.
  operator_endpoints = [
    for name in local.member_names : "${var.hosts[name].ssh_host}:${var.control_port}"
  ]

  sudo = var.use_sudo ? "sudo " : ""

  # Where the file provisioner puts files before they are installed (as the SSH user).
  stage = "/tmp/flocker-terraform"

  # The one script that installs a host (deploy/install-host).
  install_host = "${path.module}/../install-host"

  # The order of a rolling upgrade: the members by name, then the other hosts by name.
  rollout_order = concat(local.member_names, sort([for name, h in var.hosts : name if !h.control_member]))

  control_settings = {
    for name in local.member_names : name => templatefile("${path.module}/templates/control.yml.tftpl", {
      id        = local.member_ids[name]
      listen    = "0.0.0.0:${var.control_port}"
      advertise = "${var.hosts[name].underlay_address}:${var.control_port}"
      peer = [
        for other in local.member_names :
        "${local.member_ids[other]}=${var.hosts[other].underlay_address}:${var.control_port}"
        if other != name
      ]
    })
  }

  agent_settings = {
    for name, h in var.hosts : name => templatefile("${path.module}/templates/agent.yml.tftpl", {
      node      = name
      control   = local.control_endpoints
      advertise = "${h.underlay_address}:${var.agent_port}"
      storage   = h.storage
      underlay  = h.underlay_interface
    })
  }

  # The SSH connection of each host, kept in each resource's input so that destroy-time
  # provisioners (which may only use self) can connect.
  ssh = {
    for name, h in var.hosts : name => {
      host        = h.ssh_host
      user        = h.ssh_user
      private_key = var.ssh_private_key
      sudo        = local.sudo
    }
  }
}

# The cluster CA (kept when it exists: `flockerctl ca init` refuses to overwrite one) and
# the operator's user certificate.
resource "terraform_data" "ca" {
  triggers_replace = [var.ca_dir, var.user_name]

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    command     = <<-EOT
      set -eu
      mkdir -p "$CA_DIR"
      [ -f "$CA_DIR/ca.crt" ] || "$FLOCKERCTL" ca init --dir "$CA_DIR"
      "$FLOCKERCTL" ca issue --dir "$CA_DIR" --role user --name "$USER_NAME" --out "$CA_DIR/user"
    EOT
    environment = {
      CA_DIR     = var.ca_dir
      FLOCKERCTL = var.flockerctl
      USER_NAME  = var.user_name
    }
  }
}

# Each host's certificates: node (every host) and control (members), in ca_dir/hosts/NAME.
resource "terraform_data" "certificates" {
  for_each = var.hosts

  triggers_replace = [terraform_data.ca.id, each.value.underlay_address, each.value.control_member]

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    command     = <<-EOT
      set -eu
      "$FLOCKERCTL" ca issue --dir "$CA_DIR" --role node --name "$NAME" --out "$CA_DIR/hosts/$NAME/node"
      if [ "$MEMBER" = true ]; then
        "$FLOCKERCTL" ca issue --dir "$CA_DIR" --role control --name "$NAME" --host "$ADDRESS" \
          --out "$CA_DIR/hosts/$NAME/control"
      fi
    EOT
    environment = {
      CA_DIR     = var.ca_dir
      FLOCKERCTL = var.flockerctl
      NAME       = each.key
      ADDRESS    = each.value.underlay_address
      MEMBER     = tostring(each.value.control_member)
    }
  }
}

# Each host, for as long as it is in the map: removing it (or destroying the cluster)
# stops and disables the units and removes the package (certificates, settings, the Raft
# log and volumes stay on the host).
resource "terraform_data" "host" {
  for_each = var.hosts

  input = local.ssh[each.key]

  provisioner "remote-exec" {
    when       = destroy
    on_failure = continue
    inline = [
      "${self.input.sudo}systemctl disable --now flocker-agent.service flocker-control.service || true",
      "${self.input.sudo}dpkg -r flocker",
    ]
    connection {
      type        = "ssh"
      host        = self.input.host
      user        = self.input.user
      private_key = file(self.input.private_key)
    }
  }
}

# The package on each host, installed when the host is added. A new build (another
# filesha256) does not replace this resource: terraform_data.rollout upgrades the hosts one
# at a time.
resource "terraform_data" "package" {
  for_each = var.hosts

  triggers_replace = [terraform_data.host[each.key].id]
  input            = local.ssh[each.key]

  connection {
    type        = "ssh"
    host        = self.input.host
    user        = self.input.user
    private_key = file(self.input.private_key)
  }

  provisioner "remote-exec" {
    inline = ["mkdir -p ${local.stage}"]
  }
  provisioner "file" {
    source      = local.install_host
    destination = "${local.stage}/install-host"
  }
  provisioner "file" {
    source      = var.package
    destination = "${local.stage}/flocker.deb"
  }
  provisioner "remote-exec" {
    inline = [
      "${local.sudo}sh ${local.stage}/install-host --package ${local.stage}/flocker.deb",
      "rm -f ${local.stage}/flocker.deb",
    ]
  }
}

# The control members: certificate and control.yml, then every member starts at once (a
# member is ready only once a majority of the founders runs; install-host starts the unit
# without blocking and then waits for it).
resource "terraform_data" "member" {
  for_each = toset(local.member_names)

  triggers_replace = [
    terraform_data.package[each.key].id,
    terraform_data.certificates[each.key].id,
    local.control_settings[each.key],
  ]
  input = merge(local.ssh[each.key], {
    id       = local.member_ids[each.key]
    settings = local.control_settings[each.key]
  })

  connection {
    type        = "ssh"
    host        = self.input.host
    user        = self.input.user
    private_key = file(self.input.private_key)
  }

  provisioner "remote-exec" {
    inline = ["rm -rf ${local.stage}/control-tls && mkdir -p ${local.stage}/control-tls"]
  }
  provisioner "file" {
    source      = "${var.ca_dir}/hosts/${each.key}/control/"
    destination = "${local.stage}/control-tls"
  }
  provisioner "file" {
    content     = self.input.settings
    destination = "${local.stage}/control.yml"
  }
  provisioner "file" {
    source      = local.install_host
    destination = "${local.stage}/install-host"
  }
  # Waits until this member has joined and every member is up: the members started together
  # (terraform creates these instances in parallel) wait for each other here.
  provisioner "remote-exec" {
    inline = [
      "${local.sudo}sh ${local.stage}/install-host --member --control-tls ${local.stage}/control-tls --control-config ${local.stage}/control.yml",
      "rm -rf ${local.stage}/control-tls ${local.stage}/control.yml",
    ]
  }

  provisioner "remote-exec" {
    when       = destroy
    on_failure = continue
    inline     = ["${self.input.sudo}systemctl disable --now flocker-control.service"]
  }
}

# The agents, once every member runs: certificate and agent.yml, then the unit.
resource "terraform_data" "agent" {
  for_each = var.hosts

  depends_on = [terraform_data.member]

  triggers_replace = [
    terraform_data.package[each.key].id,
    terraform_data.certificates[each.key].id,
    local.agent_settings[each.key],
  ]
  input = merge(local.ssh[each.key], {
    settings = local.agent_settings[each.key]
  })

  connection {
    type        = "ssh"
    host        = self.input.host
    user        = self.input.user
    private_key = file(self.input.private_key)
  }

  provisioner "remote-exec" {
    inline = ["rm -rf ${local.stage}/node-tls && mkdir -p ${local.stage}/node-tls"]
  }
  provisioner "file" {
    source      = "${var.ca_dir}/hosts/${each.key}/node/"
    destination = "${local.stage}/node-tls"
  }
  provisioner "file" {
    content     = self.input.settings
    destination = "${local.stage}/agent.yml"
  }
  provisioner "file" {
    source      = local.install_host
    destination = "${local.stage}/install-host"
  }
  # Waits until the agent is ready and its node heartbeats.
  provisioner "remote-exec" {
    inline = [
      "${local.sudo}sh ${local.stage}/install-host --agent --node-tls ${local.stage}/node-tls --agent-config ${local.stage}/agent.yml",
      "rm -rf ${local.stage}/node-tls ${local.stage}/agent.yml",
    ]
  }

  provisioner "remote-exec" {
    when       = destroy
    on_failure = continue
    inline     = ["${self.input.sudo}systemctl disable --now flocker-agent.service"]
  }
}

# The IP pool, added once the agents run, with the operator's user certificate (adding a
# pool that exists is a no-op). flockerctl dials the members' ssh_host addresses.
resource "terraform_data" "ip_pool" {
  depends_on = [terraform_data.agent]

  triggers_replace = [var.ip_pool, terraform_data.ca.id]

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    command     = <<-EOT
      set -eu
      i=0
      until out=$("$FLOCKERCTL" --control "$CONTROL" --tls-dir "$CA_DIR/user" ip add-pool "$POOL" 2>&1); do
        i=$((i + 1))
        if [ "$i" -ge 60 ]; then echo "$out" >&2; exit 1; fi
        sleep 1
      done
      echo "$out"
    EOT
    environment = {
      CA_DIR     = var.ca_dir
      FLOCKERCTL = var.flockerctl
      CONTROL    = join(",", local.operator_endpoints)
      POOL       = var.ip_pool
    }
  }
}

# The rolling upgrade: a new build (another filesha256 of var.package) replaces this
# resource, which then visits the hosts ONE AT A TIME, the members first (local.rollout_order):
# it copies install-host and the package there and runs `install-host --package`, which
# upgrades the package (its postinst restarts the member, which returns once it has
# rejoined, then the agent) and waits until the cluster has a leader with every member up
# and the host's agent heartbeats again, before the next host. So the control service keeps
# its quorum throughout. On the first apply it runs after everything else, finds the package
# installed on every host and only checks each host in turn.
#
# A local-exec with the operator's ssh, because terraform runs the instances of one
# resource in parallel and a remote-exec reaches only its own host. Like the module's
# connections, it does not check the hosts' SSH keys.
resource "terraform_data" "rollout" {
  depends_on = [terraform_data.agent]

  triggers_replace = [filesha256(var.package)]
  input = {
    order = local.rollout_order
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    command     = <<-EOT
      set -eu
      for target in $TARGETS; do
        name=$${target%%=*}
        login=$${target#*=}
        echo "rollout: $name ($login)"
        set -- -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
          -o LogLevel=ERROR -i "$KEY" "$login"
        ssh "$@" "mkdir -p $STAGE && cat > $STAGE/install-host" < "$INSTALL_HOST"
        ssh "$@" "cat > $STAGE/flocker.deb" < "$PACKAGE"
        ssh "$@" "$${SUDO}sh $STAGE/install-host --package $STAGE/flocker.deb && rm -f $STAGE/flocker.deb" < /dev/null
      done
    EOT
    environment = {
      TARGETS      = join(" ", [for name in local.rollout_order : "${name}=${var.hosts[name].ssh_user}@${var.hosts[name].ssh_host}"])
      KEY          = pathexpand(var.ssh_private_key)
      PACKAGE      = var.package
      INSTALL_HOST = local.install_host
      STAGE        = local.stage
      SUDO         = local.sudo
    }
  }
}
