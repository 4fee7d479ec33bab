// Package containers is Shoal's container test tier (tier 4 in
// /work/shared/DESIGN.md's terms: hosts with their own addresses). Its tests
// sit behind the build tag "containers" and need a Docker engine:
//
//	go test -tags containers -v ./tests/containers/    (or scripts/container-test)
//
// They build the static binary and the FROM-scratch image (deploy/), start
// five agents as containers on a network of their own, and check the mesh
// from the outside with the built shoal CLI through API ports published on
// 127.0.0.1 only: convergence, coordinator loss and rejoin from the snapshot,
// a partition and its heal, a rolling restart; and systemd-analyze verify on
// the systemd unit. Without Docker they skip and say why.
package containers
