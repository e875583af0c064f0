import Foundation

// Mirrors android_demo/core Json.kt and Manifest.kt's Fields. Kotlin carries its own strict parser (the
// app takes no JSON library); here Foundation's JSONSerialization parses (it refuses what RFC 8259
// refuses) and `Fields` gives the same typed access, with the field's full path in every error.

/// A file that is not the JSON it should be; the message names which.
public final class JsonError: AnyIRError {}

public enum Json {
    /// Parses JSON text: objects become [String: Any], arrays [Any], numbers NSNumber (Int/Double on Linux).
    public static func parse(_ data: Data) throws -> Any {
        do {
            return try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw JsonError("bad JSON: \(error.localizedDescription)")
        }
    }

    /// Serializes with sorted keys (stable diffs of result files).
    public static func write(_ value: Any) throws -> Data {
        // JSONSerialization raises (an Objective-C exception, not a Swift error) on NaN, infinity or a
        // non-JSON type: refuse those as an error instead
        guard JSONSerialization.isValidJSONObject(value) else {
            throw JsonError("not writable as JSON (a NaN, an infinity or a non-JSON value)")
        }
        return try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys])
    }

    /// A JSON integer as Int; nil for anything else (a fraction, a string, true/false on Linux).
    static func integer(_ v: Any?) -> Int? {
        guard let v, !(v is NSNull) else { return nil }
        if let i = v as? Int { return i }
        if let n = v as? NSNumber {
            let d = n.doubleValue
            return d.rounded() == d && abs(d) < 9.0e15 ? Int(d) : nil
        }
        return nil
    }

    static func number(_ v: Any?) -> Double? {
        guard let v, !(v is NSNull) else { return nil }
        if let n = v as? NSNumber { return n.doubleValue }
        if let i = v as? Int { return Double(i) }
        if let d = v as? Double { return d }
        return nil
    }
}

/// Typed access to one JSON object with the field's full path in every error ("artifacts[1].input.layout").
/// `need`: the key must be present (null passes to the typed getter, which refuses it unless nullable);
/// `opt...`: absent or null gives nil.
public struct Fields {
    let map: [String: Any]
    let path: String
    let what: String  // "manifest" or "vectors.json": which file the messages name

    public init(_ map: [String: Any], path: String = "", what: String = "manifest") {
        self.map = map
        self.path = path
        self.what = what
    }

    /// A whole file's top-level object.
    public static func root(_ data: Data, what: String = "manifest") throws -> Fields {
        let v: Any
        do {
            v = try Json.parse(data)
        } catch let e as JsonError {
            throw ManifestError("\(what) is corrupt: \(e.message)")
        }
        guard let map = v as? [String: Any] else { throw ManifestError("\(what) is not a JSON object") }
        return Fields(map, path: "", what: what)
    }

    func whereIs(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    func missing(_ key: String) -> ManifestError {
        ManifestError("\(what) is missing the required field \"\(whereIs(key))\"")
    }
    func wrong(_ key: String, _ want: String, _ got: Any?) -> ManifestError {
        ManifestError("\(what) field \"\(whereIs(key))\" must be \(want), found \(Fields.describe(got))")
    }

    public var fieldPath: String { path }
    public func keys() -> [String] { map.keys.sorted() }
    public func opt(_ key: String) -> Any? { map[key].flatMap { $0 is NSNull ? nil : $0 } }

    func need(_ key: String) throws -> Any? {
        guard let v = map[key] else { throw missing(key) }
        return v is NSNull ? nil : v
    }

    public func string(_ key: String) throws -> String {
        let v = try need(key)
        guard let s = v as? String else { throw wrong(key, "a string", v) }
        return s
    }

    public func optString(_ key: String) throws -> String? {
        guard let v = opt(key) else { return nil }
        guard let s = v as? String else { throw wrong(key, "a string", v) }
        return s
    }

    public func nullableString(_ key: String) throws -> String? {
        guard let v = try need(key) else { return nil }
        guard let s = v as? String else { throw wrong(key, "a string or null", v) }
        return s
    }

    public func bool(_ key: String) throws -> Bool {
        let v = try need(key)
        guard let b = v as? Bool else { throw wrong(key, "true or false", v) }
        return b
    }

    public func long(_ key: String) throws -> Int {
        let v = try need(key)
        guard let i = Json.integer(v) else { throw wrong(key, "an integer", v) }
        return i
    }

    public func int(_ key: String) throws -> Int {
        let i = try long(key)
        guard i >= Int(Int32.min), i <= Int(Int32.max) else { throw wrong(key, "a 32-bit integer", i) }
        return i
    }

    public func optInt(_ key: String) throws -> Int? {
        if opt(key) == nil { return nil }
        return try int(key)
    }

    public func optDouble(_ key: String) throws -> Double? {
        guard let v = opt(key) else { return nil }
        guard let d = Json.number(v) else { throw wrong(key, "a number", v) }
        return d
    }

    public func nullableDouble(_ key: String) throws -> Double? {
        guard let v = try need(key) else { return nil }
        guard let d = Json.number(v) else { throw wrong(key, "a number or null", v) }
        return d
    }

    public func double(_ key: String) throws -> Double {
        let v = try need(key)
        guard let d = Json.number(v) else { throw wrong(key, "a number", v) }
        return d
    }

    public func obj(_ key: String) throws -> Fields {
        let v = try need(key)
        guard let m = v as? [String: Any] else { throw wrong(key, "an object", v) }
        return Fields(m, path: whereIs(key), what: what)
    }

    public func optObj(_ key: String) throws -> Fields? {
        guard let v = opt(key) else { return nil }
        guard let m = v as? [String: Any] else { throw wrong(key, "an object", v) }
        return Fields(m, path: whereIs(key), what: what)
    }

    func list(_ key: String) throws -> [Any] {
        let v = try need(key)
        guard let a = v as? [Any] else { throw wrong(key, "a list", v) }
        return a
    }

    public func intList(_ key: String) throws -> [Int] {
        return try list(key).map { v in
            guard let i = Json.integer(v), i >= Int(Int32.min), i <= Int(Int32.max) else { throw wrong(key, "a list of integers", v) }
            return i
        }
    }

    public func stringList(_ key: String) throws -> [String] {
        return try list(key).map { v in
            guard let s = v as? String else { throw wrong(key, "a list of strings", v) }
            return s
        }
    }

    public func doubleList(_ key: String) throws -> [Double] {
        return try list(key).map { v in
            guard let d = Json.number(v) else { throw wrong(key, "a list of numbers", v) }
            return d
        }
    }

    public func objList(_ key: String) throws -> [Fields] {
        return try list(key).enumerated().map { i, v in
            guard let m = v as? [String: Any] else { throw wrong("\(key)[\(i)]", "an object", v) }
            return Fields(m, path: "\(whereIs(key))[\(i)]", what: what)
        }
    }

    static func describe(_ v: Any?) -> String {
        guard let v, !(v is NSNull) else { return "null" }
        if let s = v as? String { return "the string \"\(s.prefix(40))\"" }
        if v is [Any] { return "a list" }
        if v is [String: Any] { return "an object" }
        if let d = Json.number(v) { return "the number \(d)" }
        return "\(v)"
    }
}
