import ArgumentParser
struct Generate: ParsableCommand {}
struct Chat: ParsableCommand {}
