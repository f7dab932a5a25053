package api

import (
	"fmt"

	"github.com/codeexec/codeexec/shared/messages"
)

// resultView is a result as the HTTP API shows it.
type resultView struct {
	JobID         string  `json:"jobId"`
	Language      string  `json:"language"`
	RunTimeStatus string  `json:"runTimeStatus"`
	Output        string  `json:"output"`
	Stdout        string  `json:"stdout"`
	Stderr        string  `json:"stderr"`
	ExitCode      *int    `json:"exitCode"`
	Signal        string  `json:"signal,omitempty"`
	ErrorMessage  *string `json:"errorMessage"`
	ExecutionTime float64 `json:"executionTime"`
	WallTimeMs    int64   `json:"wallTimeMs"`
	CPUTimeMs     int64   `json:"cpuTimeMs"`
	MemoryUsage   string  `json:"memoryUsage"`
	MemoryBytes   int64   `json:"memoryBytes"`
	CPUUsage      string  `json:"cpuUsage"`
	CompileOutput *string `json:"compileOutput,omitempty"`
	// Truncated: the output was cut at its limit; what is shown is its head.
	Truncated   bool   `json:"truncated,omitempty"`
	PriceMicros int64  `json:"priceMicros"`
	Region      string `json:"region,omitempty"`
	RunnerID    string `json:"runnerId,omitempty"`
}

func present(r messages.Result) resultView {
	v := resultView{
		JobID:         r.JobID,
		Language:      r.Language,
		RunTimeStatus: string(r.Status),
		Output:        r.Stdout + r.Stderr,
		Stdout:        r.Stdout,
		Stderr:        r.Stderr,
		ExitCode:      r.ExitCode,
		Truncated:     r.Truncated,
		Signal:        r.Signal,
		ExecutionTime: float64(r.WallTimeMs) / 1000,
		WallTimeMs:    r.WallTimeMs,
		CPUTimeMs:     r.CPUTimeMs,
		MemoryUsage:   formatBytes(r.MemoryBytes),
		MemoryBytes:   r.MemoryBytes,
		CPUUsage:      formatCPU(r.CPUTimeMs, r.WallTimeMs),
		PriceMicros:   r.PriceMicros,
		Region:        r.Region,
		RunnerID:      r.RunnerID,
	}
	if r.ErrorMessage != "" {
		msg := r.ErrorMessage
		v.ErrorMessage = &msg
	}
	if r.CompileOutput != "" || r.Status == messages.StatusCompileError {
		out := r.CompileOutput
		v.CompileOutput = &out
	}
	if !r.Status.Chargeable() {
		v.PriceMicros = 0
	}
	return v
}

// formatBytes shows a byte count in decimal megabytes, as "9.1MB".
func formatBytes(n int64) string { return fmt.Sprintf("%.1fMB", float64(n)/1e6) }

// formatCPU shows CPU time as a share of wall time, as "73.8%".
func formatCPU(cpuMs, wallMs int64) string {
	if wallMs <= 0 {
		return "0.0%"
	}
	return fmt.Sprintf("%.1f%%", float64(cpuMs)*100/float64(wallMs))
}
