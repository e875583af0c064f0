import AnyIRCoreML
import AnyIRKit
import Photos
import PhotosUI
import SwiftUI

/// The screen's state: the bundle, the chosen artifact and compute units, the photo before and after,
/// progress and latency. The restore runs off the main thread; progress hops back per tile.
@MainActor
final class RestoreModel: ObservableObject {
    @Published var bundle: LoadedBundle?
    @Published var message: String?
    @Published var artifactID = ""
    @Published var units: CoreMLRunner.Units = .all
    @Published var before: UIImage?
    @Published var after: UIImage?
    @Published var running = false
    @Published var tilesDone = 0
    @Published var tilesTotal = 0
    @Published var lastTileMs = 0.0
    @Published var tileMsSum = 0.0
    @Published var totalMs: Double?
    @Published var runnerLabel = ""

    private var source: RGBA8Image?
    private var restored: RGBA8Image?
    private var task: Task<Void, Never>?

    init() {
        do {
            let b = try BundleStore.open()
            bundle = b
            artifactID = b.defaultArtifact?.id ?? ""
        } catch {
            message = "\(error)"  // e.g. the ExecuTorch version refusal, shown instead of the controls
        }
    }

    var artifact: ManifestArtifact? { bundle?.runnable.first { $0.id == artifactID } }
    var meanTileMs: Double { tilesDone > 0 ? tileMsSum / Double(tilesDone) : 0 }

    func pick(_ item: PhotosPickerItem?) async {
        guard let item else { return }
        do {
            guard let data = try await item.loadTransferable(type: Data.self) else { throw AnyIRError("the photo could not be read") }
            let img = try ImageConversion.upright(from: data)
            source = img
            before = ImageConversion.uiImage(img)
            after = nil
            restored = nil
            totalMs = nil
            message = nil
        } catch {
            message = "\(error)"
        }
    }

    func restore() {
        guard let b = bundle, let a = artifact, let img = source, !running else { return }
        running = true
        tilesDone = 0
        tileMsSum = 0
        totalMs = nil
        message = nil
        let units = self.units
        let overlap = b.manifest.input.overlap
        let model = self  // main-actor isolated, so safe to hand to the background task
        task = Task.detached(priority: .userInitiated) {
            do {
                let loaded = try await BundleStore.runner(for: a, in: b, units: units)
                let runner = TimedRunner(loaded)
                defer { runner.close() }
                await model.started(runner.label)
                let t0 = ProcessInfo.processInfo.systemUptime
                let out = try TiledRestore(runner: runner, overlap: overlap).restore(img, progress: { done, total in
                    let ms = runner.lastMs
                    Task { @MainActor in model.tile(done, total, ms) }
                }, isCancelled: { Task.isCancelled })
                let ms = (ProcessInfo.processInfo.systemUptime - t0) * 1000
                let shown = ImageConversion.uiImage(out)
                await model.finished(out, shown, ms)
            } catch is RestoreCancelled {
                await model.stopped("cancelled")
            } catch {
                await model.stopped("\(error)")
            }
        }
    }

    func cancel() { task?.cancel() }

    private func started(_ label: String) { runnerLabel = label }

    private func tile(_ done: Int, _ total: Int, _ ms: Double) {
        tilesTotal = total
        tilesDone = max(tilesDone, done)
        lastTileMs = ms
        tileMsSum += ms
    }

    private func finished(_ out: RGBA8Image, _ shown: UIImage?, _ ms: Double) {
        restored = out
        after = shown
        totalMs = ms
        running = false
    }

    private func stopped(_ why: String) {
        message = why
        running = false
    }

    func save() async {
        guard let out = restored, let image = ImageConversion.uiImage(out), let png = image.pngData() else { return }
        let status = await PHPhotoLibrary.requestAuthorization(for: .addOnly)
        guard status == .authorized || status == .limited else {
            message = "allow adding photos in Settings > Privacy > Photos to save the result"
            return
        }
        do {
            try await PHPhotoLibrary.shared().performChanges {
                PHAssetCreationRequest.forAsset().addResource(with: .photo, data: png, options: nil)
            }
            message = "saved to Photos"
        } catch {
            message = "could not save: \(error.localizedDescription)"
        }
    }
}
