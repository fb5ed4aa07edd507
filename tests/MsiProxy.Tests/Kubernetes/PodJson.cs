using System.Text.Json.Nodes;

namespace MsiProxy.Tests.Kubernetes;

/// <summary>Pods exactly as the API server returns them (a Deployment's pod on AKS, trimmed of nothing that matters).</summary>
internal static class PodJson
{
    private const string Template = """
    {
      "kind": "Pod",
      "apiVersion": "v1",
      "metadata": {
        "name": "api-7d9c6b5f4-x2x7q",
        "generateName": "api-7d9c6b5f4-",
        "namespace": "team-a",
        "uid": "00000000-0000-0000-0000-000000000000",
        "resourceVersion": "1",
        "creationTimestamp": "2025-01-14T09:12:31Z",
        "labels": { "app": "api", "pod-template-hash": "7d9c6b5f4" },
        "annotations": { "kubectl.kubernetes.io/restartedAt": "2025-01-14T09:12:30Z" },
        "ownerReferences": [
          { "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9c6b5f4", "uid": "b2c3f1d4-55e6-4a77-8899-aabbccddeeff",
            "controller": true, "blockOwnerDeletion": true }
        ],
        "managedFields": [
          { "manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": "2025-01-14T09:12:31Z",
            "fieldsType": "FieldsV1", "fieldsV1": { "f:metadata": { "f:generateName": {}, "f:labels": { ".": {}, "f:app": {} } } } }
        ]
      },
      "spec": {
        "volumes": [
          { "name": "kube-api-access-8k2xv",
            "projected": { "sources": [
              { "serviceAccountToken": { "expirationSeconds": 3607, "path": "token" } },
              { "configMap": { "name": "kube-root-ca.crt", "items": [ { "key": "ca.crt", "path": "ca.crt" } ] } },
              { "downwardAPI": { "items": [ { "path": "namespace", "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.namespace" } } ] } }
            ], "defaultMode": 420 } }
        ],
        "containers": [
          { "name": "api", "image": "contoso.azurecr.io/api:1.4.2",
            "ports": [ { "containerPort": 8080, "protocol": "TCP" } ],
            "resources": { "limits": { "cpu": "500m", "memory": "256Mi" }, "requests": { "cpu": "100m", "memory": "128Mi" } },
            "volumeMounts": [ { "name": "kube-api-access-8k2xv", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount" } ],
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent" }
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "api",
        "serviceAccount": "api",
        "nodeName": "node-1",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
          { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 },
          { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 }
        ],
        "priority": 0,
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority"
      },
      "status": {
        "phase": "Running",
        "conditions": [
          { "type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-01-14T09:12:33Z" },
          { "type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-01-14T09:12:31Z" },
          { "type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-01-14T09:12:34Z" },
          { "type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-01-14T09:12:34Z" },
          { "type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-01-14T09:12:31Z" }
        ],
        "hostIP": "10.224.0.4",
        "hostIPs": [ { "ip": "10.224.0.4" } ],
        "podIP": "10.244.1.17",
        "podIPs": [ { "ip": "10.244.1.17" } ],
        "startTime": "2025-01-14T09:12:31Z",
        "containerStatuses": [
          { "name": "api", "state": { "running": { "startedAt": "2025-01-14T09:12:33Z" } }, "lastState": {}, "ready": true, "restartCount": 0,
            "image": "contoso.azurecr.io/api:1.4.2",
            "imageID": "contoso.azurecr.io/api@sha256:3b5f1c0e9a7d4c2b8e6f0a1d2c3b4a5968776655443322110ffeeddccbbaa998",
            "containerID": "containerd://4f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0", "started": true }
        ],
        "qosClass": "Burstable"
      }
    }
    """;

    public static JsonObject Create(string ns, string name, string serviceAccount, string? ip, string phase = "Running",
        IDictionary<string, string>? labels = null, IDictionary<string, string>? annotations = null, bool hostNetwork = false,
        string node = "node-1", string? uid = null)
    {
        var pod = JsonNode.Parse(Template)!.AsObject();
        var metadata = pod["metadata"]!.AsObject();
        metadata["name"] = name;
        metadata["namespace"] = ns;
        metadata["uid"] = uid ?? Guid.NewGuid().ToString();
        if (labels is not null)
        {
            metadata["labels"] = ToObject(labels);
        }

        if (annotations is not null)
        {
            metadata["annotations"] = ToObject(annotations);
        }

        var spec = pod["spec"]!.AsObject();
        spec["serviceAccountName"] = serviceAccount;
        spec["serviceAccount"] = serviceAccount;
        spec["nodeName"] = node;
        if (hostNetwork)
        {
            spec["hostNetwork"] = true;
            ip = "10.224.0.4"; // a host-network pod's IP is the node's
        }

        SetIp(pod, ip);
        return SetPhase(pod, phase);
    }

    public static string Uid(JsonObject pod) => (string)pod["metadata"]!["uid"]!;

    public static JsonObject SetIp(JsonObject pod, string? ip)
    {
        var status = pod["status"]!.AsObject();
        status.Remove("podIP");
        status.Remove("podIPs");
        if (ip is not null)
        {
            status["podIP"] = ip;
            status["podIPs"] = new JsonArray(new JsonObject { ["ip"] = ip });
        }

        return pod;
    }

    public static JsonObject SetPhase(JsonObject pod, string phase)
    {
        var status = pod["status"]!.AsObject();
        status["phase"] = phase;
        if (phase == "Pending")
        {
            status["containerStatuses"] = new JsonArray(new JsonObject
            {
                ["name"] = "api",
                ["state"] = new JsonObject { ["waiting"] = new JsonObject { ["reason"] = "ContainerCreating" } },
                ["lastState"] = new JsonObject(),
                ["ready"] = false,
                ["restartCount"] = 0,
                ["image"] = "contoso.azurecr.io/api:1.4.2",
                ["imageID"] = "",
                ["started"] = false,
            });
        }

        return pod;
    }

    private static JsonObject ToObject(IDictionary<string, string> values)
    {
        var result = new JsonObject();
        foreach (var (key, value) in values)
        {
            result[key] = value;
        }

        return result;
    }
}
