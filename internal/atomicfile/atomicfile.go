// Package atomicfile replaces a file's content so that a crash or a power
// cut leaves either the old content or the new one on disk, never a mix, a
// torn file or an empty one.
//
// The steps, each needed: write a temporary file beside the target, fsync
// it (else a power cut after the rename can leave the new name pointing at
// blocks never written: an empty or NUL-filled file), rename it over the
// target (atomic within one directory), then fsync the directory (else the
// rename itself may be lost and the old content come back).
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces the content of path with data, durably: when it returns
// nil, data is on disk under path. perm is the file's mode, exactly (the
// umask does not apply: reading the umask is not safe while other goroutines
// create files). On error path is unchanged, or holds data without the
// guarantee that it survives a power cut.
func Write(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, (*os.File).Sync)
}

// WriteUnsynced is Write without the fsyncs: readers never see a partial
// file, but a power cut may lose the new content, or leave the file empty.
// For files that only show state and are rewritten on every change (the
// simulator's relay levels), where an fsync a write would slow each relay
// change for nothing.
func WriteUnsynced(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, nil)
}

// write is Write with the fsync as a parameter (nil: none), so that a test can see each
// one happen at its step.
func write(path string, data []byte, perm os.FileMode, sync func(*os.File) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	err = fillAndSync(tmp, data, perm, sync)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("atomicfile: close %s: %w", tmp.Name(), cerr)
	}
	if err == nil {
		if rerr := os.Rename(tmp.Name(), path); rerr != nil {
			err = fmt.Errorf("atomicfile: %w", rerr)
		}
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return syncDir(dir, sync)
}

func fillAndSync(f *os.File, data []byte, perm os.FileMode, sync func(*os.File) error) error {
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: chmod %s: %w", f.Name(), err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", f.Name(), err)
	}
	if sync == nil {
		return nil
	}
	if err := sync(f); err != nil {
		return fmt.Errorf("atomicfile: fsync %s: %w", f.Name(), err)
	}
	return nil
}

func syncDir(dir string, sync func(*os.File) error) error {
	if sync == nil {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: open directory: %w", err)
	}
	defer d.Close()
	if err := sync(d); err != nil {
		return fmt.Errorf("atomicfile: fsync directory %s: %w", dir, err)
	}
	return nil
}
