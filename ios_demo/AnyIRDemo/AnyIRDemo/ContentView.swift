import AnyIRCoreML
import PhotosUI
import SwiftUI

struct ContentView: View {
    @StateObject private var model = RestoreModel()
    @State private var item: PhotosPickerItem?

    var body: some View {
        NavigationStack {
            ScrollView {
                VStack(alignment: .leading, spacing: 14) {
                    if let b = model.bundle {
                        Text("\(b.manifest.name) \(b.manifest.version) · tile \(b.manifest.input.tileH)x\(b.manifest.input.tileW), overlap \(b.manifest.input.overlap)")
                            .font(.footnote).foregroundStyle(.secondary)
                        Picker("Model", selection: $model.artifactID) {
                            ForEach(b.runnable, id: \.id) { a in Text("\(a.id) (\(a.backend))").tag(a.id) }
                        }
                        if model.artifact?.backend == "coreml" {
                            Picker("Compute units", selection: $model.units) {
                                ForEach(CoreMLRunner.Units.allCases) { u in Text(u.rawValue).tag(u) }
                            }
                            .pickerStyle(.segmented)
                        }
                        PhotosPicker(selection: $item, matching: .images) { Label("Pick a photo", systemImage: "photo") }
                            .disabled(model.running)
                    }
                    if let msg = model.message {
                        Text(msg).foregroundStyle(model.bundle == nil ? Color.red : Color.primary).textSelection(.enabled)
                    }
                    if model.running {
                        ProgressView(value: Double(model.tilesDone), total: Double(max(model.tilesTotal, 1))) {
                            Text("tile \(model.tilesDone) of \(model.tilesTotal) · \(model.runnerLabel)")
                        }
                        Text(String(format: "last tile %.0f ms · mean %.0f ms", model.lastTileMs, model.meanTileMs)).font(.caption)
                        Button("Cancel", role: .cancel) { model.cancel() }
                    } else if model.before != nil {
                        Button("Restore") { model.restore() }.buttonStyle(.borderedProminent)
                    }
                    if let total = model.totalMs {
                        Text(String(format: "%ld tiles · %.0f ms per tile · %.2f s in total · %@", model.tilesDone, model.meanTileMs, total / 1000, model.runnerLabel))
                            .font(.caption)
                    }
                    if let before = model.before {
                        if let after = model.after {
                            BeforeAfterSlider(before: before, after: after)
                            Button("Save to Photos") { Task { await model.save() } }
                        } else {
                            Image(uiImage: before).resizable().scaledToFit()
                        }
                    }
                }
                .padding()
            }
            .navigationTitle("AnyIR")
        }
        .onChange(of: item) { _, newItem in Task { await model.pick(newItem) } }
    }
}
