"""The pages of Flowbuilder, one module per area: dashboard, flows, builder, runs, connections,
gallery."""
