# Shared by run.sh and profile.sh.

# gen_pipe FILE FIRST LAST ARG...: RESP commands, one per index FIRST..LAST,
# each "#" inside an ARG replaced by the index (for redis-cli --pipe).
gen_pipe() {
  local file=$1 first=$2 last=$3
  shift 3
  local IFS=$'\037'
  LC_ALL=C awk -v first="$first" -v last="$last" -v spec="$*" 'BEGIN {
    # (no gsub here: mawk gets quadratic with it over 100k+ lines)
    n = split(spec, a, "\037")
    for (i = first; i <= last; i++) {
      si = sprintf("%d", i)
      s = "*" n "\r\n"
      for (j = 1; j <= n; j++) {
        m = split(a[j], part, "#")
        v = part[1]
        for (k = 2; k <= m; k++) v = v si part[k]
        s = s "$" length(v) "\r\n" v "\r\n"
      }
      printf "%s", s
    }
  }' >"$file"
}
