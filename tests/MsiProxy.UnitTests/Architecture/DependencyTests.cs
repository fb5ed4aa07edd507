using System.Reflection;
using System.Runtime.CompilerServices;
using MsiProxy.Docker;
using MsiProxy.Hosting;
using MsiProxy.Interception;
using MsiProxy.Kubernetes;
using MsiProxy.ServiceDefaults;

namespace MsiProxy.UnitTests.Architecture;

/// <summary>
/// The projects' direction, read from the compiled assemblies: each may reference only the projects below it, so the
/// graph has no cycle; no product project opens its internals to another; a namespace lives in one project.
/// </summary>
public sealed class DependencyTests
{
    /// <summary>Each product assembly and the product assemblies it may reference (docs/architecture.md draws this).</summary>
    private static readonly Dictionary<string, string[]> Allowed = new(StringComparer.Ordinal)
    {
        ["MsiProxy.ServiceDefaults"] = [],
        ["MsiProxy.Pipeline"] = ["MsiProxy.ServiceDefaults"],
        ["MsiProxy.Interception"] = ["MsiProxy.Pipeline"],
        ["MsiProxy.Docker"] = ["MsiProxy.Pipeline", "MsiProxy.Interception", "MsiProxy.ServiceDefaults"],
        ["MsiProxy.Kubernetes"] = ["MsiProxy.Pipeline", "MsiProxy.Interception", "MsiProxy.ServiceDefaults"],
        ["MsiProxy"] = ["MsiProxy.Pipeline", "MsiProxy.Interception", "MsiProxy.Docker", "MsiProxy.Kubernetes", "MsiProxy.ServiceDefaults"],
    };

    private static readonly Assembly[] Product =
    [
        typeof(ServiceDefaultsExtensions).Assembly,
        typeof(PipelineExtensions).Assembly,
        typeof(ProxyEndpoint).Assembly,
        typeof(DockerMonitorExtensions).Assembly,
        typeof(KubernetesDiscoveryExtensions).Assembly,
        typeof(MsiProxyHost).Assembly,
    ];

    private static IEnumerable<string> ProductReferences(Assembly assembly) => assembly.GetReferencedAssemblies()
        .Select(r => r.Name!).Where(n => n == "MsiProxy" || n.StartsWith("MsiProxy.", StringComparison.Ordinal));

    [Fact]
    public void Every_product_assembly_is_in_the_table()
    {
        Assert.Equal(Allowed.Keys.Order(StringComparer.Ordinal), Product.Select(a => a.GetName().Name!).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Each_project_references_only_the_projects_below_it()
    {
        foreach (var assembly in Product)
        {
            var name = assembly.GetName().Name!;
            var unexpected = ProductReferences(assembly).Except(Allowed[name]).ToList();
            Assert.True(unexpected.Count == 0, $"{name} references {string.Join(", ", unexpected)}; it may reference only {string.Join(", ", Allowed[name])}");
        }
    }

    [Fact]
    public void The_graph_of_references_has_no_cycle_and_the_emulator_is_not_in_it()
    {
        var graph = Product.ToDictionary(a => a.GetName().Name!, a => ProductReferences(a).ToList(), StringComparer.Ordinal);
        Assert.DoesNotContain(graph.Values.SelectMany(r => r), r => r == "MsiProxy.ImdsEmulator");

        // Depth-first: a reference back to an assembly still on the path is a cycle.
        var done = new HashSet<string>(StringComparer.Ordinal);
        void Visit(string node, List<string> path)
        {
            Assert.False(path.Contains(node), "cycle: " + string.Join(" → ", path.Append(node)));
            if (!done.Add(node))
            {
                return;
            }

            foreach (var next in graph.GetValueOrDefault(node) ?? [])
            {
                Visit(next, [.. path, node]);
            }
        }

        foreach (var node in graph.Keys)
        {
            Visit(node, []);
        }

        Assert.Equal(graph.Count, done.Count);
    }

    [Fact]
    public void No_product_project_sees_another_ones_internals()
    {
        var names = Allowed.Keys.ToHashSet(StringComparer.Ordinal);
        foreach (var assembly in Product)
        {
            var friends = assembly.GetCustomAttributes<InternalsVisibleToAttribute>().Select(a => a.AssemblyName.Split(',')[0]).ToList();
            Assert.NotEmpty(friends); // the tests are friends: an empty list would mean the attribute is not read at all
            Assert.DoesNotContain(friends, names.Contains);
            Assert.DoesNotContain("MsiProxy.Demo", friends);
        }
    }

    [Fact]
    public void A_namespace_lives_in_one_project()
    {
        var owners = Product.SelectMany(a => a.GetTypes().Where(t => t.Namespace?.StartsWith("MsiProxy", StringComparison.Ordinal) == true
                && !t.IsDefined(typeof(CompilerGeneratedAttribute), false) && t.DeclaringType is null)
            .Select(t => (t.Namespace!, Assembly: a.GetName().Name!)))
            .Distinct()
            .GroupBy(p => p.Item1, p => p.Assembly);
        var split = owners.Where(g => g.Count() > 1).Select(g => $"{g.Key} in {string.Join(" and ", g)}").ToList();
        Assert.True(split.Count == 0, "namespaces split across projects: " + string.Join("; ", split));
    }
}
