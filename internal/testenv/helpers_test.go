package testenv_test

import (
	"os"
	"sync"
)

var buildDirs struct {
	mu   sync.Mutex
	dirs []string
}

// tempDirOutsideTest returns a directory that outlives the test that asked
// for it (builds are shared by several tests); TestMain removes it.
func tempDirOutsideTest() (string, error) {
	dir, err := os.MkdirTemp("", "byodrop-testenv-")
	if err != nil {
		return "", err
	}
	buildDirs.mu.Lock()
	buildDirs.dirs = append(buildDirs.dirs, dir)
	buildDirs.mu.Unlock()
	return dir, nil
}

func removeBuildDirs() {
	buildDirs.mu.Lock()
	defer buildDirs.mu.Unlock()
	for _, d := range buildDirs.dirs {
		os.RemoveAll(d)
	}
}
