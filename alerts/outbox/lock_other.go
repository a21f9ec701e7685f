//go:build !unix

package outbox

import "os"

// lockDir only creates dir/LOCK: without flock, keeping two processes off one
// outbox is left to the deployment.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
}
