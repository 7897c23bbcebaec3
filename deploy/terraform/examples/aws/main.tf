# Three Debian instances on AWS, each a control member and an agent, brought up by the
# module over SSH. Formatted and documented, but not validated or applied in this
# project's CI: that needs the AWS provider, which `terraform init` downloads (see
# README.md).

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

variable "region" {
  description = "The AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "ami" {
  description = "A Debian 12 AMI in the region (with dockerd installed, or installed by user_data)."
  type        = string
}

variable "instance_type" {
  description = "The instances' type."
  type        = string
  default     = "t3.medium"
}

variable "key_name" {
  description = "The EC2 key pair the instances accept for the admin user."
  type        = string
}

variable "ssh_private_key" {
  description = "Path of that key pair's private key."
  type        = string
}

variable "package" {
  description = "The package built by deploy/deb/build."
  type        = string
}

variable "operator_cidr" {
  description = "Where terraform and flockerctl run from: may reach SSH (22) and the control service (4523)."
  type        = string
}

resource "aws_security_group" "flocker" {
  name        = "flocker"
  description = "Flocker cluster: SSH and the control service from the operator, everything between the hosts"

  ingress {
    description = "SSH from the operator"
    from_port   = 22
    to_port     = 22
    protocol    = "tcp"
    cidr_blocks = [var.operator_cidr]
  }
  ingress {
    description = "flockerctl from the operator"
    from_port   = 4523
    to_port     = 4523
    protocol    = "tcp"
    cidr_blocks = [var.operator_cidr]
  }
  ingress {
    description = "control service, Agent API, volume transfers and the overlay between the hosts"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_instance" "host" {
  for_each = toset(["host1", "host2", "host3"])

  ami                    = var.ami
  instance_type          = var.instance_type
  key_name               = var.key_name
  vpc_security_group_ids = [aws_security_group.flocker.id]

  # dockerd and ZFS for zfs: storage; the module installs the rest.
  user_data = <<-EOT
    #!/bin/sh
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io zfsutils-linux
  EOT

  root_block_device {
    volume_size = 30
  }

  tags = {
    Name = "flocker-${each.key}"
  }
}

module "flocker" {
  source = "../.."

  package         = var.package
  ssh_private_key = var.ssh_private_key
  ca_dir          = "${path.root}/ca"
  ip_pool         = "10.255.0.0/16"
  use_sudo        = true

  hosts = {
    for name, instance in aws_instance.host : name => {
      ssh_host           = instance.public_ip
      ssh_user           = "admin"
      underlay_address   = instance.private_ip
      underlay_interface = "ens5"
      control_member     = true
      # A directory: a ZFS pool needs a disk of its own (an EBS volume and `zpool create`).
      storage = "dir:/var/lib/flocker"
    }
  }
}

output "control_endpoints" {
  description = "The control members (private addresses)."
  value       = module.flocker.control_endpoints
}

output "docker_hosts" {
  description = "Each instance's DOCKER_HOST through its agent."
  value       = module.flocker.docker_hosts
}

output "flockerctl" {
  description = "flockerctl from the operator's machine (public addresses)."
  value       = module.flocker.flockerctl
}
