# Shared by the Terraform checks (source it; ROOT must be set). Sets up Terraform to install
# providers only from a local filesystem mirror, never from the network:
#   TF_MIRROR_VERSION   the hashicorp/aws version the mirror holds (5.100.0 on this machine image)
#   TF_PROVIDER_MIRROR  the mirror's directory (the folder above the registry host folder);
#                       found on the machine when not set
#   TF_CLI_CONFIG_FILE  a CLI config with provider_installation { filesystem_mirror } only
TF_MIRROR_VERSION=5.100.0

tf_require() {
  command -v terraform >/dev/null || { echo "terraform not found: install Terraform >= 1.11 (the machine image carries 1.11)" >&2; return 1; }
  local v
  v=$(terraform version -json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["terraform_version"])')
  python3 -c 'import sys; a=tuple(map(int,sys.argv[1].split(".")[:2])); sys.exit(0 if a>=(1,11) else 1)' "$v" \
    || { echo "terraform $v is too old: write-only arguments need Terraform >= 1.11" >&2; return 1; }
}

# The mirror: $TF_PROVIDER_MIRROR, else the usual plugin folders, else a search of the machine.
tf_find_mirror() {
  local cand f
  for cand in "${TF_PROVIDER_MIRROR:-}" /opt/tf-plugins /usr/share/terraform/plugins /usr/local/share/terraform/plugins \
    "$HOME/.terraform.d/plugins" "$HOME/.local/share/terraform/plugins"; do
    [[ -n $cand && -d $cand ]] || continue
    f=$(find "$cand" -path "*/hashicorp/aws/$TF_MIRROR_VERSION/linux_amd64/terraform-provider-aws_*" -type f 2>/dev/null | head -n1)
    [[ -n $f ]] && break
  done
  if [[ -z ${f:-} ]]; then
    f=$(find / -xdev -path "*/hashicorp/aws/$TF_MIRROR_VERSION/linux_amd64/terraform-provider-aws_*" -type f 2>/dev/null | head -n1)
  fi
  if [[ -z ${f:-} ]]; then
    cat >&2 <<MSG
no local Terraform provider mirror with hashicorp/aws $TF_MIRROR_VERSION (linux_amd64) found.
This machine image carries one; elsewhere create it once with
  terraform providers mirror -platform=linux_amd64 <dir>   (in a folder whose configuration requires aws = "$TF_MIRROR_VERSION")
and set TF_PROVIDER_MIRROR=<dir>.
MSG
    return 1
  fi
  # <mirror>/<host>/hashicorp/aws/<version>/<platform>/<binary>
  TF_PROVIDER_MIRROR=$(cd "$(dirname "$f")/../../../../.." && pwd)
  export TF_PROVIDER_MIRROR
}

# A private CLI config (the machine's TF_CLI_CONFIG_FILE may point at nothing) that installs
# providers from the mirror only: no `direct` block, so nothing can be downloaded.
tf_offline_config() {
  local dir=$1
  tf_require && tf_find_mirror || return 1
  cat >"$dir/cli.tfrc" <<CFG
provider_installation {
  filesystem_mirror {
    path    = "$TF_PROVIDER_MIRROR"
    include = ["hashicorp/aws"]
  }
}
CFG
  export TF_CLI_CONFIG_FILE="$dir/cli.tfrc" TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
  unset TF_PLUGIN_CACHE_DIR
}

# Copy terraform/ into $1 without the arguments terraform/compat/newer-provider-attributes.json
# lists, with the AWS constraints set to the mirror's version.
# TF_CHECK_SRC=<dir> checks another copy of terraform/ instead (mutation proofs).
tf_compat_copy() {
  python3 "$ROOT/scripts/checks/lib/tf_compat.py" strip "${TF_CHECK_SRC:-$ROOT/terraform}" "$1" "$ROOT/terraform/compat/newer-provider-attributes.json"
}
