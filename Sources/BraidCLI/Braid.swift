import ArgumentParser
import Braid

@main
struct BraidCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "braid", abstract: "braid")
}
