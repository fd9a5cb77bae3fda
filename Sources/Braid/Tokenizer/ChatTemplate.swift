/// One message of a conversation.
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
    public static func system(_ s: String) -> ChatMessage { ChatMessage(role: "system", content: s) }
    public static func user(_ s: String) -> ChatMessage { ChatMessage(role: "user", content: s) }
    public static func assistant(_ s: String) -> ChatMessage { ChatMessage(role: "assistant", content: s) }
}

/// ChatML, rendered in code as llama.cpp does for its built-in templates; the default system
/// prompt is the one in SmolLM2's template. A model without a chat template (a pretrained
/// model such as Gemma 3 270M) gets `raw`: the messages' text alone, to be completed.
public struct ChatTemplate: Sendable {
    public var defaultSystemPrompt: String
    /// No template: render gives the messages' contents, one per line, and no markers.
    public var isRaw = false

    public static let raw: ChatTemplate = {
        var t = ChatTemplate(defaultSystemPrompt: "")
        t.isRaw = true
        return t
    }()

    public static let smolLMSystemPrompt = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

    public init(defaultSystemPrompt: String = ChatTemplate.smolLMSystemPrompt) {
        self.defaultSystemPrompt = defaultSystemPrompt
    }

    /// Recognises the template carried by a GGUF (`tokenizer.chat_template`) by its markers.
    /// Only ChatML is built in; any other template falls back to it, and a model with none
    /// completes raw text (as llama.cpp's completion does).
    public static func detect(fromTemplate template: String?) -> ChatTemplate {
        guard let t = template else { return .raw }
        guard t.contains("<|im_start|>") else { return ChatTemplate() }
        // The template's own default system prompt, when it writes one literally.
        if let r = t.range(of: "<|im_start|>system\n"), let e = t[r.upperBound...].range(of: "<|im_end|>") {
            let prompt = String(t[r.upperBound..<e.lowerBound])
            if !prompt.contains("{") { return ChatTemplate(defaultSystemPrompt: prompt) }
        }
        return ChatTemplate()
    }

    /// The prompt text before a first user message's content (the system turn and the user's
    /// header; nothing for raw text).
    public var userTurnStart: String {
        isRaw ? "" : render([], addGenerationPrompt: false) + "<|im_start|>user\n"
    }

    /// The prompt text; a default system message comes first when the conversation has none.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        if isRaw { return messages.map(\.content).joined(separator: "\n") }
        var out = ""
        if messages.first?.role != "system" {
            out += "<|im_start|>system\n\(defaultSystemPrompt)<|im_end|>\n"
        }
        for m in messages {
            out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n"
        }
        if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        return out
    }
}
