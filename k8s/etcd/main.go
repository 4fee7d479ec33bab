// Command etcd is etcd v3.7.3's server, built from the module proxy for the
// real-Kubernetes test tier. It does what go.etcd.io/etcd/server/v3's own
// main package does.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
