package metrics

import "time"

// Load is one node's smoothed load: what the node gossips about itself and what
// every other node reads from its View. All figures are relative to what the
// node may use: inside a container with cgroup v2 limits, CPUPercent is busy
// time over the CPU quota and MemPercent is the working set (memory.current
// less inactive_file) over memory.max.
type Load struct {
	// CPUPercent is busy CPU time over available CPU time, 0..100.
	CPUPercent float64 `json:"cpu_percent"`
	// MemPercent is memory in use over memory available to the node, 0..100.
	MemPercent float64 `json:"mem_percent"`
	// MemAvailable is memory still available to the node, in bytes.
	MemAvailable uint64 `json:"mem_available_bytes"`
	// NetRxBps and NetTxBps are bytes per second received and sent, summed
	// over non-loopback interfaces.
	NetRxBps float64 `json:"net_rx_bps"`
	NetTxBps float64 `json:"net_tx_bps"`
	// Load1 is the 1-minute load average.
	Load1 float64 `json:"load1"`
	// Cores is the CPU the node may use, in cores: the host's logical CPU
	// count, or the cgroup quota (which may be fractional, e.g. 0.5).
	Cores float64 `json:"cores"`
	// Taken is when the sample behind this load was taken (local clock).
	Taken time.Time `json:"-"`
}
