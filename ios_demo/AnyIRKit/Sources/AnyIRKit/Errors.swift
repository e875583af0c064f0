import Foundation

// Mirrors android_demo/core Errors.kt: what the core refuses, each with one line for the user (the app
// shows `message` as is). The names follow anyir_core/errors.py.

/// Any refusal of the core.
public class AnyIRError: LocalizedError, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// An image the tiled path cannot take (empty, wrong buffer size) or a model output of the wrong size.
public final class ImageError: AnyIRError {}

/// A manifest the app does not understand: other schema, missing or ill-typed field, corrupt JSON.
public final class ManifestError: AnyIRError {}
