package bridge

import "syscall"

// volatileFS reports whether dir is on a file system that a reboot empties
// (tmpfs, ramfs): state there survives a restart, not a power cut.
func volatileFS(dir string) bool {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return false
	}
	const tmpfsMagic, ramfsMagic = 0x01021994, 0x858458f6
	// Statfs_t.Type is int32 on 32-bit ARM (ramfs's magic is negative there):
	// compare the 32 bits.
	t := uint32(st.Type)
	return t == tmpfsMagic || t == ramfsMagic
}
