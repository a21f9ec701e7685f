// Package atomicfile replaces a file's content so that a crash leaves
// either the old or the new content, never a torn file: the new content is
// written to path.tmp, fsynced, renamed over path, and the folder fsynced.
package atomicfile

import (
	"bufio"
	"os"
	"path/filepath"
)

// File is the next content of a file, being written.
type File struct {
	path string
	f    *os.File
	*bufio.Writer
}

// Create starts the next content of path.
func Create(path string) (*File, error) {
	f, err := os.OpenFile(path+".tmp", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	return &File{path: path, f: f, Writer: bufio.NewWriterSize(f, 256<<10)}, nil
}

// Abort drops what was written; path keeps its content.
func (a *File) Abort() {
	a.f.Close()
	os.Remove(a.f.Name())
}

// Commit makes what was written path's content, durably.
func (a *File) Commit() error {
	if err := a.Flush(); err != nil {
		a.Abort()
		return err
	}
	if err := a.f.Sync(); err != nil {
		a.Abort()
		return err
	}
	if err := a.f.Close(); err != nil {
		os.Remove(a.f.Name())
		return err
	}
	if err := os.Rename(a.f.Name(), a.path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(a.path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// WriteFile replaces path's content with data.
func WriteFile(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}
