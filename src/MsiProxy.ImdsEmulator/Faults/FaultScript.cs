using MsiProxy.ImdsEmulator.Protocol;

namespace MsiProxy.ImdsEmulator;

/// <summary>
/// The scripted faults, first match wins. Rules are copied on enqueue, so changing a rule object afterwards
/// has no effect. Thread-safe.
/// </summary>
public sealed class FaultScript
{
    private readonly Lock _gate = new();
    private readonly List<Entry> _entries = [];

    public void Enqueue(FaultRule rule)
    {
        ArgumentNullException.ThrowIfNull(rule);
        Validate(rule);
        lock (_gate)
        {
            _entries.Add(new Entry(Copy(rule), rule.Times));
        }
    }

    public void Clear()
    {
        lock (_gate)
        {
            _entries.Clear();
        }
    }

    /// <summary>Rules still pending, with <see cref="FaultRule.Times"/> set to the remaining count.</summary>
    public IReadOnlyList<FaultRule> Pending
    {
        get
        {
            lock (_gate)
            {
                return _entries.Select(e =>
                {
                    var copy = Copy(e.Rule);
                    copy.Times = e.Remaining;
                    return copy;
                }).ToList();
            }
        }
    }

    internal FaultRule? TakeMatch(string path, ImdsQuery? query)
    {
        lock (_gate)
        {
            for (var i = 0; i < _entries.Count; i++)
            {
                var entry = _entries[i];
                if (!Matches(entry.Rule, path, query))
                {
                    continue;
                }

                if (entry.Remaining > 0)
                {
                    entry.Remaining--;
                    if (entry.Remaining == 0)
                    {
                        _entries.RemoveAt(i);
                    }
                }

                return entry.Rule;
            }

            return null;
        }
    }

    private static bool Matches(FaultRule rule, string path, ImdsQuery? query)
    {
        if (!path.StartsWith(rule.PathPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        if (rule.Resource is not null && !string.Equals(query?.Get("resource"), rule.Resource, StringComparison.Ordinal))
        {
            return false;
        }

        if (rule.Query is not null)
        {
            foreach (var (name, value) in rule.Query)
            {
                if (!string.Equals(query?.Get(name), value, StringComparison.Ordinal))
                {
                    return false;
                }
            }
        }

        return true;
    }

    internal static void Validate(FaultRule rule)
    {
        if (string.IsNullOrEmpty(rule.PathPrefix) || rule.PathPrefix[0] != '/')
        {
            throw new ArgumentException("FaultRule.PathPrefix must start with '/'.", nameof(rule));
        }

        if (rule.Status != 0 && (rule.Status < 100 || rule.Status > 599))
        {
            throw new ArgumentException($"FaultRule.Status {rule.Status} is not an HTTP status code.", nameof(rule));
        }

        if (rule.Delay < TimeSpan.Zero || rule.RetryAfter < TimeSpan.Zero)
        {
            throw new ArgumentException("FaultRule.Delay and RetryAfter cannot be negative.", nameof(rule));
        }

        if (rule.Status == 0 && !rule.Drop && !rule.Stall && rule.Delay == TimeSpan.Zero)
        {
            throw new ArgumentException("A FaultRule needs a Status, Drop, Stall or Delay.", nameof(rule));
        }
    }

    private static FaultRule Copy(FaultRule rule) => new()
    {
        PathPrefix = rule.PathPrefix,
        Resource = rule.Resource,
        Query = rule.Query is null ? null : new Dictionary<string, string>(rule.Query, StringComparer.Ordinal),
        Status = rule.Status,
        RetryAfter = rule.RetryAfter,
        Delay = rule.Delay,
        Drop = rule.Drop,
        Stall = rule.Stall,
        Body = rule.Body,
        Times = rule.Times,
    };

    private sealed class Entry(FaultRule rule, int remaining)
    {
        public FaultRule Rule { get; } = rule;

        public int Remaining { get; set; } = remaining;
    }
}
