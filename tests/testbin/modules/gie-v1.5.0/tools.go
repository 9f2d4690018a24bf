//go:build tools

// Package tools pins the commands the tests build from this module.
package tools

import (
	_ "sigs.k8s.io/gateway-api-inference-extension/cmd/epp"
	_ "sigs.k8s.io/gateway-api-inference-extension/cmd/bbr"
)
