package directory

// File descriptors an LDAP connection holds: the client's socket. Every
// operation is answered in this process on that socket (there is no
// loopback relay to a second LDAP server), and the store's files are
// shared by all connections.
const fdsPerConn = 1

// ConnectionCap is the per-listener connection cap that fits in nofile
// descriptors (RLIMIT_NOFILE) with listeners LDAP listeners open: a quarter
// of the descriptors, and at least 256, stay for Badger's files, the HTTP
// listeners and their connections; the rest is shared by the LDAP
// listeners. It returns configured if that fits, else the cap that does
// (at least 1), with lowered set. nofile 0 means unknown: configured stands.
func ConnectionCap(configured, listeners int, nofile uint64) (limit int, lowered bool) {
	if nofile == 0 || listeners < 1 {
		return configured, false
	}
	reserve := max(nofile/4, 256)
	if nofile <= reserve {
		return 1, configured > 1
	}
	fit := (nofile - reserve) / uint64(listeners*fdsPerConn)
	if uint64(configured) <= fit {
		return configured, false
	}
	return int(max(fit, 1)), true
}
