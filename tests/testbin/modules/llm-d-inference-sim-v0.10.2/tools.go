//go:build tools

// Package tools pins the commands the tests build from this module.
package tools

import (
	_ "github.com/llm-d/llm-d-inference-sim/cmd/llm-d-inference-sim"
)
