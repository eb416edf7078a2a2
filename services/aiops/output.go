package aiops

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// openOutput opens where an offline tool writes its result ("-" is
// stdout). A file is written under a temporary name beside it; commit(err)
// closes it and renames it into place only when err is nil and the close
// worked, else removes it, so a failed run never leaves a truncated file
// that looks like a result (a pipe or a device is written as it is).
// commit returns the first error.
func openOutput(path string, stdout io.Writer) (w io.Writer, commit func(error) error, err error) {
	if path == "-" {
		return stdout, func(err error) error { return err }, nil
	}
	if err := checkOutputPath(path); err != nil {
		return nil, nil, err
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		// a pipe or a device (/dev/stdout): written as it is, no rename
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return nil, nil, err
		}
		return f, func(err error) error {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, nil, err
	}
	// CreateTemp makes it 0600; a result is read like any file written.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, nil, err
	}
	return f, func(err error) error {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			os.Remove(f.Name())
		}
		return err
	}, nil
}

// checkOutputPath tells, before any work, why path ("" or "-": none)
// cannot be written: a folder, or in a folder that does not exist.
func checkOutputPath(path string) error {
	if path == "" || path == "-" {
		return nil
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("%s is a folder", path)
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || !st.IsDir() {
		return fmt.Errorf("%s: its folder %s does not exist", path, filepath.Dir(path))
	}
	return nil
}
