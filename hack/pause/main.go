// The pause image's only program: the process that holds a pod's namespaces, as
// Kubernetes' own build/pause does. It waits for SIGINT or SIGTERM and exits 0; no registry
// is reachable where the e2e node runs, so hack/build-node.sh builds it into an image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
