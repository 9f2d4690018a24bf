//go:build tools

// Package tools pins the commands the tests build from this module.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
