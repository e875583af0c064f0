import SwiftUI

/// The restored photo with the original revealed left of a draggable divider.
struct BeforeAfterSlider: View {
    let before: UIImage
    let after: UIImage
    @State private var split: CGFloat = 0.5

    var body: some View {
        GeometryReader { geo in
            let w = geo.size.width
            ZStack(alignment: .leading) {
                Image(uiImage: after).resizable().scaledToFit()
                Image(uiImage: before).resizable().scaledToFit()
                    .mask(alignment: .leading) { Rectangle().frame(width: max(0, split * w)) }
                Rectangle().fill(.white).frame(width: 2).offset(x: split * w - 1).shadow(radius: 2)
                HStack {
                    Text("before").font(.caption).padding(4).background(.ultraThinMaterial)
                    Spacer()
                    Text("after").font(.caption).padding(4).background(.ultraThinMaterial)
                }
                .frame(maxHeight: .infinity, alignment: .top)
            }
            .contentShape(Rectangle())
            .gesture(DragGesture(minimumDistance: 0).onChanged { g in
                split = min(max(g.location.x / max(w, 1), 0), 1)
            })
        }
        .aspectRatio(after.size.width / max(after.size.height, 1), contentMode: .fit)
    }
}
