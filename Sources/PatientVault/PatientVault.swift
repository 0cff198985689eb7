// The domain module: see Documentation/Architecture.md.
