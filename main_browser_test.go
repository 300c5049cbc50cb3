package main

import (
	"testing"

	"github.com/tagway/tagway/internal/browsertest"
)

// TestMain stops the browsers the tests shared once they have run.
func TestMain(m *testing.M) { browsertest.Main(m) }
