# Only Terraform's built-in provider (terraform_data) and provisioners: nothing is
# downloaded, so `terraform init` works offline.
terraform {
  required_version = ">= 1.5"
}
