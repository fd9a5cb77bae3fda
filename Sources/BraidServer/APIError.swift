import Braid
import Foundation
import Hummingbird

/// An OpenAI error object with its HTTP status: `{"error": {"message", "type", "param", "code"}}`.
struct APIError: Error, CustomStringConvertible {
    var status: HTTPResponse.Status
    var message: String
    var type: String
    var code: String?
    var param: String?
    /// Seconds a client should wait before retrying (503 when busy).
    var retryAfter: Int?

    var description: String { "\(status.code) \(message)" }

    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", code: code, param: param)
    }

    /// The error a client sees for an engine failure.
    init(_ f: ServingFailure) {
        switch f {
        case .queueFull:
            self.init(status: .serviceUnavailable, message: f.description, type: "overloaded_error", code: "queue_full", retryAfter: 1)
        case .shuttingDown:
            self.init(status: .serviceUnavailable, message: f.description, type: "overloaded_error", code: "shutting_down", retryAfter: 1)
        case .deadlineExceeded:
            self.init(status: .serviceUnavailable, message: f.description, type: "overloaded_error", code: "deadline_exceeded", retryAfter: 1)
        case .cancelled:
            self.init(status: .serviceUnavailable, message: f.description, type: "overloaded_error", code: "cancelled")
        case .unknownTask:
            self.init(status: .notFound, message: f.description, type: "invalid_request_error", code: "model_not_found", param: "model")
        case .invalid(let m):
            self.init(status: .badRequest, message: m, type: "invalid_request_error", code: nil)
        }
    }

    init(status: HTTPResponse.Status, message: String, type: String, code: String? = nil, param: String? = nil, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retryAfter = retryAfter
    }

    struct Body: Encodable {
        struct Inner: Encodable {
            var message: String
            var type: String
            var param: String?
            var code: String?
            enum CodingKeys: String, CodingKey { case message, type, param, code }
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(message, forKey: .message)
                try c.encode(type, forKey: .type)
                try c.encode(param, forKey: .param)
                try c.encode(code, forKey: .code)
            }
        }
        var error: Inner
    }

    var body: Body { Body(error: .init(message: message, type: type, param: param, code: code)) }

    var response: Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        if let r = retryAfter { headers[.retryAfter] = String(r) }
        let data = (try? JSONEncoder().encode(body)) ?? Data()
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Turns every error into an OpenAI error object: the client's mistakes are 4xx, and only a
/// fault of the server itself is a 500.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            return e.response
        } catch let e as HTTPError {
            let type: String
            switch e.status {
            case .unauthorized: type = "authentication_error"
            case .notFound: type = "not_found_error"
            case .contentTooLarge: type = "invalid_request_error"
            default: type = e.status.code < 500 ? "invalid_request_error" : "server_error"
            }
            let message = e.body ?? (e.status == .contentTooLarge ? "the request body is over the server's --max-body" : e.status.reasonPhrase)
            return APIError(status: e.status, message: message, type: type).response
        } catch {
            context.logger.error("internal error: \(error)")
            return APIError(status: .internalServerError, message: "internal error: \(error)", type: "server_error").response
        }
    }
}
