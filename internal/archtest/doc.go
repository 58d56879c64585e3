// Package archtest holds the test of docs/ARCHITECTURE.md's import rules:
// every project package imports only the project packages its row there
// lists.
package archtest
