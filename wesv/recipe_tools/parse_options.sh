# Kaldi-style option parsing for recipes. Source it after the defaults:
#
#   stage=1          # defaults are plain shell variables
#   use_gpu=true
#   . tools/parse_options.sh
#
# Then `--foo-bar x` and `--foo-bar=x` set foo_bar=x, but only when foo_bar is already defined (an unknown option
# is an error that names it). When the default is true/false the new value must be true or false too.
# `--help` / `-h` prints the script's header comments (the comment block under the #! line) and every variable
# assigned before this file is sourced, with its current value, then exits 0.
# Parsing stops at the first argument that does not start with `--` (or at `--`, which is dropped); what is left
# stays in "$@" for the script.

if ! (return 0 2>/dev/null); then
  echo "parse_options.sh: source this file from a script ('. tools/parse_options.sh'), do not run it" >&2
  exit 1
fi

__po_usage() {
  # Header comments of the calling script: the contiguous '#' lines after the #! line.
  local script=$1 line first=true
  while IFS= read -r line || [ -n "$line" ]; do
    if $first; then
      first=false
      case $line in '#!'*) continue ;; esac
    fi
    case $line in
      '#'*) line=${line#\#}; printf '%s\n' "${line# }" ;;
      *) break ;;
    esac
  done <"$script"
  echo
  echo "Options (current values):"
  local name seen=" "
  # Option variables are the top-level assignments before the line that sources parse_options.sh.
  while IFS= read -r line || [ -n "$line" ]; do
    case $line in *parse_options.sh*) break ;; esac
    if [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)= ]]; then
      name=${BASH_REMATCH[1]}
      case $seen in *" $name "*) continue ;; esac
      seen="$seen$name "
      [ -n "${!name+x}" ] && printf '  --%-20s %s\n' "$name" "${!name}"
    fi
  done <"$script"
}

while [ $# -gt 0 ]; do
  case $1 in
    --help | -h)
      __po_usage "$0"
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --*=*)
      __po_name=${1%%=*}
      __po_value=${1#*=}
      shift
      ;;
    --?*)
      __po_name=$1
      if [ $# -lt 2 ]; then
        echo "$0: option $1 needs a value (see $0 --help)" >&2
        exit 1
      fi
      __po_value=$2
      shift 2
      ;;
    *) break ;;
  esac
  __po_var=${__po_name#--}
  __po_var=${__po_var//-/_}
  if ! [[ $__po_var =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!__po_var+x}" ]; then
    echo "$0: unknown option $__po_name (no variable '$__po_var' is defined before parse_options.sh; see $0 --help)" >&2
    exit 1
  fi
  case ${!__po_var} in
    true | false)
      case $__po_value in
        true | false) ;;
        *)
          echo "$0: option $__po_name expects true or false (default ${!__po_var}), got '$__po_value'" >&2
          exit 1
          ;;
      esac
      ;;
  esac
  printf -v "$__po_var" '%s' "$__po_value"
done
unset __po_name __po_value __po_var
unset -f __po_usage
true
