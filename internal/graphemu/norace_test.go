//go:build !race

package graphemu

const raceEnabled = false
