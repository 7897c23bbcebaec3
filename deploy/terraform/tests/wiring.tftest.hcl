# The module's wiring, checked offline in plan mode (`terraform test`): nothing is
# provisioned, so no host, CA or package is needed (the package is a fixture file that is
# only hashed).

variables {
  package         = "tests/fixtures/flocker_test.deb"
  ssh_private_key = "/nonexistent/id_ed25519"
  ip_pool         = "10.255.0.0/16"
  ca_dir          = "/nonexistent/ca"
  hosts = {
    node1 = { ssh_host = "192.0.2.11", underlay_address = "10.0.0.11", underlay_interface = "eth0", control_member = true, storage = "zfs:tank/flocker" }
    node2 = { ssh_host = "192.0.2.12", underlay_address = "10.0.0.12", underlay_interface = "eth0", control_member = true, storage = "zfs:tank/flocker" }
    node3 = { ssh_host = "192.0.2.13", underlay_address = "10.0.0.13", underlay_interface = "eth0", control_member = true }
    node4 = { ssh_host = "192.0.2.14", ssh_user = "admin", underlay_address = "10.0.0.14" }
  }
}

run "three_members_name_each_other" {
  command = plan

  assert {
    condition     = length(terraform_data.member) == 3
    error_message = "three control_member hosts give three member resources"
  }
  assert {
    condition     = toset(keys(terraform_data.member)) == toset(["node1", "node2", "node3"])
    error_message = "the members are the hosts with control_member = true"
  }
  assert {
    condition     = [for n in ["node1", "node2", "node3"] : yamldecode(terraform_data.member[n].input.settings).id] == [1, 2, 3]
    error_message = "members get ids 1..3 in the order of their names"
  }
  assert {
    condition     = yamldecode(terraform_data.member["node1"].input.settings).peer == ["2=10.0.0.12:4523", "3=10.0.0.13:4523"]
    error_message = "node1's peers are the other two members, ID=UNDERLAY:PORT"
  }
  assert {
    condition     = yamldecode(terraform_data.member["node2"].input.settings).peer == ["1=10.0.0.11:4523", "3=10.0.0.13:4523"]
    error_message = "node2's peers are the other two members"
  }
  assert {
    condition     = yamldecode(terraform_data.member["node3"].input.settings).peer == ["1=10.0.0.11:4523", "2=10.0.0.12:4523"]
    error_message = "node3's peers are the other two members"
  }
  assert {
    condition     = length(terraform_data.agent) == 4 && length(terraform_data.package) == 4 && length(terraform_data.certificates) == 4
    error_message = "every host gets the package, certificates and an agent"
  }
  assert {
    condition     = output.control_endpoints == ["10.0.0.11:4523", "10.0.0.12:4523", "10.0.0.13:4523"]
    error_message = "the control endpoints are the members' underlay addresses"
  }
  assert {
    condition     = output.docker_hosts["node4"].docker_host == "unix:///run/flocker/docker.sock" && output.docker_hosts["node4"].ssh == "admin@192.0.2.14"
    error_message = "each host's DOCKER_HOST is the agent's socket, reached as ssh_user@ssh_host"
  }
}

run "settings_have_the_keys_of_deploy_config" {
  command = plan

  assert {
    # Every key is one of deploy/config/control.yml's (`#key:` there), so flocker-control
    # knows it; likewise for the agent.
    condition = alltrue([
      for k in keys(yamldecode(terraform_data.member["node1"].input.settings)) :
      strcontains(file("../config/control.yml"), "#${k}:")
    ])
    error_message = "control.yml uses only keys of deploy/config/control.yml"
  }
  assert {
    condition = alltrue([
      for k in keys(yamldecode(terraform_data.agent["node1"].input.settings)) :
      strcontains(file("../config/agent.yml"), "#${k}:")
    ])
    error_message = "agent.yml uses only keys of deploy/config/agent.yml"
  }
  assert {
    condition = yamldecode(terraform_data.member["node1"].input.settings) == {
      id        = 1
      data_dir  = "/var/lib/flocker-control"
      listen    = "0.0.0.0:4523"
      advertise = "10.0.0.11:4523"
      peer      = ["2=10.0.0.12:4523", "3=10.0.0.13:4523"]
      tls_dir   = "/etc/flocker/tls/control"
    }
    error_message = "node1's control.yml"
  }
  assert {
    condition = yamldecode(terraform_data.agent["node1"].input.settings) == {
      node      = "node1"
      control   = ["10.0.0.11:4523", "10.0.0.12:4523", "10.0.0.13:4523"]
      advertise = "10.0.0.11:4524"
      tls_dir   = "/etc/flocker/tls/node"
      storage   = "zfs:tank/flocker"
      underlay  = "eth0"
    }
    error_message = "node1's agent.yml"
  }
  assert {
    condition = yamldecode(terraform_data.agent["node4"].input.settings) == {
      node      = "node4"
      control   = ["10.0.0.11:4523", "10.0.0.12:4523", "10.0.0.13:4523"]
      advertise = "10.0.0.14:4524"
      tls_dir   = "/etc/flocker/tls/node"
      storage   = "dir:/var/lib/flocker"
    }
    error_message = "without underlay_interface the agent.yml has no underlay key (the network side is off); storage defaults to dir:/var/lib/flocker"
  }
  assert {
    condition     = terraform_data.agent["node4"].input.user == "admin" && terraform_data.agent["node1"].input.user == "root"
    error_message = "ssh_user defaults to root"
  }
}

run "a_new_build_rolls_the_hosts_one_at_a_time" {
  # What plan shows of the rolling upgrade: only the rollout is replaced by a new build
  # (the per-host package resources are not), and it visits the members first, then the
  # other hosts. That it depends on every host's agent is checked by the Rust test
  # (control/tests/terraform.rs) in `terraform graph`.
  command = plan

  assert {
    condition     = terraform_data.rollout.triggers_replace[0] == filesha256(var.package) && length(terraform_data.rollout.triggers_replace) == 1
    error_message = "the rollout is replaced by a new build, and only by that"
  }
  assert {
    condition     = alltrue([for p in values(terraform_data.package) : length(p.triggers_replace) == 1])
    error_message = "a host's package resource is replaced only with its host (the host id), not by a new build: that would upgrade every host at once"
  }
  assert {
    condition     = terraform_data.rollout.input.order == tolist(["node1", "node2", "node3", "node4"])
    error_message = "the rollout visits the members by name, then the other hosts"
  }
}

run "agents_wait_for_the_members" {
  # A single member: its peer list is empty. Plan mode cannot show depends_on directly;
  # the agent resources' depends_on = [terraform_data.member] is checked by the Rust test
  # (control/tests/terraform.rs) with `terraform graph`.
  command = plan

  variables {
    hosts = {
      solo = { ssh_host = "192.0.2.21", underlay_address = "10.0.0.21", control_member = true }
      b    = { ssh_host = "192.0.2.22", underlay_address = "10.0.0.22" }
    }
  }

  assert {
    condition     = yamldecode(terraform_data.member["solo"].input.settings).peer == []
    error_message = "a lone member has no peers"
  }
  assert {
    condition     = yamldecode(terraform_data.agent["b"].input.settings).control == ["10.0.0.21:4523"]
    error_message = "agents dial the lone member"
  }
  assert {
    condition     = terraform_data.rollout.input.order == tolist(["solo", "b"])
    error_message = "the rollout visits the member before a host whose name sorts first"
  }
}

run "no_control_member_is_refused" {
  command = plan

  variables {
    hosts = {
      a = { ssh_host = "192.0.2.31", underlay_address = "10.0.0.31" }
    }
  }

  expect_failures = [var.hosts]
}

run "an_even_member_count_is_refused" {
  command = plan

  variables {
    hosts = {
      a = { ssh_host = "192.0.2.41", underlay_address = "10.0.0.41", control_member = true }
      b = { ssh_host = "192.0.2.42", underlay_address = "10.0.0.42", control_member = true }
    }
  }

  expect_failures = [var.hosts]
}

run "a_bad_ip_pool_is_refused" {
  command = plan

  variables {
    ip_pool = "10.255.0.0"
  }

  expect_failures = [var.ip_pool]
}
