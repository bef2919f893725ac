"""Generated protobuf and gRPC stubs, built from proto/dockside/v1 by `make stubs`."""
