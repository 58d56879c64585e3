package bridge

import (
	"os"
	"path/filepath"
)

// writeStateFile replaces path with data so that after a crash or a power
// cut the file holds either the old or the new data, never a part: a
// temporary file beside it is written and fsynced, renamed over path, and
// the directory fsynced so the rename itself is on disk.
//
// It is the same contract as internal/atomicfile.Write (being written on
// another branch); once that is merged this helper should call it.
func writeStateFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	err = fillSync(tmp, data, perm)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func fillSync(f *os.File, data []byte, perm os.FileMode) error {
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}
