package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// The bench sees a receiptd data dir from outside only, so that it works
// with any receiptd, old or new: the log is the entries whose names match
// -log-files (events.db today), and everything else in the data dir is the
// read models, whatever their names or format (views.db today, perhaps a
// directory later). The bench's config file is written beside the data
// dir, not in it, so that it is neither.

// configPath is where the bench writes the config of the data dir dir.
func configPath(dataDir string) string { return dataDir + ".yaml" }

// dataFiles splits the entries of a data dir into the log and the read
// models.
func dataFiles(dataDir, logGlobs string) (log, models []string, err error) {
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		p := filepath.Join(dataDir, e.Name())
		if isLog(e.Name(), logGlobs) {
			log = append(log, p)
		} else {
			models = append(models, p)
		}
	}
	if len(log) == 0 {
		return nil, nil, fmt.Errorf("no log in %s: no entry matches -log-files %q (entries: %s)", dataDir, logGlobs, names(entries))
	}
	return log, models, nil
}

func isLog(name, globs string) bool {
	for _, g := range strings.Split(globs, ",") {
		if ok, _ := filepath.Match(strings.TrimSpace(g), name); ok {
			return true
		}
	}
	return false
}

func names(entries []os.DirEntry) string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return strings.Join(out, ", ")
}

// dirSizes is the bytes a data dir holds: its log and its read models.
type dirSizes struct{ log, models int64 }

func measureDataDir(dataDir, logGlobs string) (dirSizes, error) {
	log, models, err := dataFiles(dataDir, logGlobs)
	if err != nil {
		return dirSizes{}, err
	}
	return dirSizes{log: treeSize(log...), models: treeSize(models...)}, nil
}

// treeSize is the apparent size (as ls shows it) of the files under paths.
func treeSize(paths ...string) int64 {
	var n int64
	for _, p := range paths {
		_ = filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
	}
	return n
}

// removeReadModels deletes everything in a stopped server's data dir but
// its log: the next start catches the read models up from the first event.
func removeReadModels(dataDir, logGlobs string) error {
	_, models, err := dataFiles(dataDir, logGlobs)
	if err != nil {
		return err
	}
	if len(models) == 0 {
		return fmt.Errorf("no read models in %s to delete (only the log, -log-files %q)", dataDir, logGlobs)
	}
	for _, p := range models {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return nil
}

// warmLog reads the log files once, so that a "warm" rebuild finds them in
// the page cache whatever ran before.
func warmLog(dataDir, logGlobs string) error {
	log, _, err := dataFiles(dataDir, logGlobs)
	if err != nil {
		return err
	}
	for _, p := range log {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(io.Discard, f)
			return err
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// dropPageCache asks the kernel to forget cached file pages, so that a
// rebuild reads the log from the disk as after a reboot. It needs root and
// reports whether it worked; without it the rebuild runs on a warm cache,
// and the report says so.
func dropPageCache() bool {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("1\n"), 0o200) == nil
}
