import SwiftUI

@main
struct AnyIRDemoApp: App {
    var body: some Scene {
        WindowGroup { ContentView() }
    }
}
