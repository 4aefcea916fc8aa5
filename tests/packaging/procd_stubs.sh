# Stand-ins for what /etc/rc.common and procd.sh give an init script on OpenWrt: each
# procd call prints one line ("set user pocket-agent"), so a test reads what the script
# would hand to procd. uci_load_validate applies the script's own typed defaults, with a
# value from UCI_<option> in the environment standing in for /etc/config/pocket-agent.
procd_open_instance() { echo "open_instance $*"; }
procd_close_instance() { echo "close_instance"; }
procd_set_param() { echo "set $*"; }
procd_append_param() { echo "append $*"; }
procd_add_reload_trigger() { echo "reload_trigger $*"; }
procd_add_interface_trigger() { echo "interface_trigger $*"; }
procd_add_validation() { echo "validation $*"; }
config_load() { :; }
config_get() { eval "$1=\${UCI_$3:-$4}"; }
chown() { echo "chown $*"; }
uci_load_validate() {
	local _package="$1" _type="$2" _name="$3" _function="$4" _spec _option _rest _default
	shift 4
	for _spec in "$@"; do
		_option="${_spec%%:*}"
		_rest="${_spec#*:}"
		case "$_rest" in *:*) _default="${_rest#*:}" ;; *) _default="" ;; esac
		eval "$_option=\${UCI_$_option-\$_default}"
	done
	"$_function" "$_name" "${UCI_VALIDATION_RESULT:-0}"
}
