package main

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPassword(t *testing.T) {
	cmd := quickCommand("hash-password")
	cmd.Stdin = strings.NewReader("correct horse battery\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword(bytes.TrimSpace(out), []byte("correct horse battery")); err != nil {
		t.Fatalf("hash-password output %q does not match the password: %v", out, err)
	}
	cmd = quickCommand("hash-password")
	cmd.Stdin = strings.NewReader("short\n")
	if err := cmd.Run(); err == nil {
		t.Fatal("hash-password accepted a 5-byte password")
	}
}
