"""What a process tells about itself beyond its logs: traces (``tracing``) and the gauges
that are measured rather than counted (``gauges``)."""
