//go:build !linux

package bridge

func volatileFS(string) bool { return false }
