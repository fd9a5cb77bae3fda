import Testing
import Braid

struct StopMatcherTests {
    @Test func textThatMayStartAStopStringIsHeldBackUntilRuledOut() {
        var m = StopMatcher(["o w", "xyz"])
        #expect(m.feed("Hel") == "Hel")
        #expect(m.feed("lo") == "l")  // "o" may start "o w"
        #expect(m.feed(" there") == "o there")
        #expect(m.feed(" wo") == " w")  // "o" held again
        #expect(m.feed("rld") == "orld")
        #expect(m.flush() == "")
        #expect(!m.matched)
    }

    @Test func aStopStringEndsTheTextBeforeIt() {
        var m = StopMatcher(["\n\n"])
        #expect(m.feed("first line\n") == "first line")
        #expect(m.feed("\nsecond") == "")
        #expect(m.matched)
        #expect(m.feed("more") == "" && m.flush() == "")
    }

    @Test func withoutStopStringsEverythingPassesAndMultiByteStopsWork() {
        var plain = StopMatcher([])
        #expect(plain.feed("abc") == "abc")
        var m = StopMatcher(["é!"])
        #expect(m.feed("caf") == "caf")
        #expect(m.feed("é") == "")
        #expect(m.feed("!") == "" && m.matched)
    }
}
