package config

import "os"

// canMake tries what run will do in dir, the deepest existing folder of
// storage.dir: make a folder there (and remove it). Permissions and
// read-only mounts (a systemd unit's ProtectSystem=strict outside its
// StateDirectory) could be asked of access(2), but a pseudo file system
// (/proc, /sys) says yes there and refuses the mkdir: only trying tells.
func canMake(dir string) error {
	d, err := os.MkdirTemp(dir, ".fenceline-check-")
	if err != nil {
		return err
	}
	return os.Remove(d)
}
