import TriplineCore

/// An API node of a cluster (`tripline serve --cluster`): accepted events go to the cluster's
/// gateway instead of a local engine, and the alerts come back from the cluster's workers
/// (`EngineHost.storeClusterAlerts`). Called on the engine thread only.
public protocol ClusterLink: AnyObject {
    /// The gateway's time core (a pipeline with no rules): watermark, statistics, entity names.
    var timeCore: Pipeline { get }
    /// The positions the gateway accepted before this node took over (rebuilt from the
    /// stream), oldest first: the latest position of each entity comes back from them.
    var rebuiltPositions: [Event] { get }
    /// Offers a batch to the time core; its records wait for `flush()`.
    func offer(_ texts: EventTexts, check: (Event, Int) -> TriplineError?, accepted: (Event) -> Void) -> Result<ClusterGateway.Offered, InvalidEvents>
    /// An advance of event time, for every partition (published at the next `flush()`).
    func advance(until: Millis)
    /// Tells every partition the watermark (published at the next `flush()`).
    func markWatermark()
    /// Publishes what was offered and waits for JetStream's acknowledgements; throws when they
    /// did not all come.
    func flush() throws
    /// Makes `catalog` the cluster's catalog: a new version, which the workers switch to at
    /// this place in the stream (published before it returns), where they emit the
    /// transitions of `zoneEdits`.
    func publishCatalog(_ catalog: Catalog, zoneEdits: [ZoneEdit]) throws
}

/// The cluster did not acknowledge published events: this API node's gateway state is no
/// longer known to match the stream.
public struct ClusterPublishFailed: Error, CustomStringConvertible, Sendable {
    public var description: String
}
