namespace MsiProxy.Upstreams.Scheduling;

/// <summary>
/// One upstream attempt asking for a slot: the client it is for (its own queue), its priority, and the latest time the
/// attempt may start and still be useful (the caller's budget; <see cref="DateTimeOffset.MaxValue"/> for none).
/// </summary>
internal readonly record struct UpstreamWork(string Client, WorkPriority Priority, DateTimeOffset Deadline);
