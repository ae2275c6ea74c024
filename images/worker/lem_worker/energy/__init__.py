"""Energy measurement: NVML (GPU), RAPL (CPU package / DRAM), sampling, windows, validation."""
