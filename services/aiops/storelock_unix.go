//go:build unix

package aiops

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes an exclusive flock on f without waiting: errLocked when
// another open file (this process's or another's) holds it. The kernel
// drops it when the holder's file is closed or its process ends, however
// it ends, so a crash leaves no stale lock behind.
func tryLock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}
