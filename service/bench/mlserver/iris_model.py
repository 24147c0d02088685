"""MLServer's side of the benchmark: the iris classifier as MLServer serves scikit-learn.

    python iris_model.py <dir> <http port> <grpc port> <metrics port> <parallel workers>

Trains what the service's built-in model is (StandardScaler, then a multinomial
LogisticRegression, on the four iris measurements in the same order), saves it with joblib as
mlserver-sklearn expects, and writes MLServer's settings: the ports, `parallel_workers`,
`debug: false`, which turns off the access log line MLServer otherwise writes for every request
(mlscore logs successful requests only at debug), and `metrics_dir` inside <dir>: MLServer keeps
its Prometheus multiprocess files there, by default in `.metrics` under the working directory,
which would leave them in the checkout.
"""

import json
import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main() -> None:
    root, http_port, grpc_port, metrics_port, workers = sys.argv[1:6]
    features, labels = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(features, labels)

    folder = Path(root) / "iris"
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "iris",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "1"},
            }
        )
    )
    (Path(root) / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": int(http_port),
                "grpc_port": int(grpc_port),
                "metrics_port": int(metrics_port),
                "parallel_workers": int(workers),
                "debug": False,
                "metrics_dir": str(Path(root) / ".metrics"),
            }
        )
    )


if __name__ == "__main__":
    main()
